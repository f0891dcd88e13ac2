"""Debezium's documented encoding limits: values its PostgreSQL connector cannot carry exactly.

For each limit, what a correct connector delivers instead (as the text the reader rebuilds),
so that a captured value can be told apart: the limit (reported under ``known_limits``) or a
real difference (``values``). The final-state check compares table rows as delivered too.

- ``timetz offset lost``: ZonedTime keeps the instant in GMT; ``10:00:00+03`` arrives as
  ``07:00:00Z``.
- ``timestamp out of range``: MicroTimestamp is 64-bit microseconds since 1970, which ends in
  year 294,247; beyond it the connector saturates the seconds and the sum wraps.
- ``2-D array lost``: a multi-dimensional array arrives as a 1-D array of nulls, one per
  element of its first dimension (``{{1,2},{3,4}}`` → ``[null,null]``).
- ``array lower bound lost``: ``[2:3]={7,8}`` arrives as ``[7,8]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from loadgen.cdc import debezium_types as T
from loadgen.cdc.change import LimitedValue

_INT64_MAX = 2**63 - 1
_US_PER_S = 1_000_000
_TIMETZ = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d+)?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?")
_TIMESTAMP = re.compile(r"(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?( BC)?")

Limit = Callable[[str], LimitedValue | None]


def timetz_offset(text: str) -> LimitedValue | None:
    m = _TIMETZ.fullmatch(text)
    if m is None:
        return None
    hh, mi, ss, frac, sign, oh, om, os_ = m.groups()
    offset_s = int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)
    if offset_s == 0:
        return None
    local_s = int(hh) * 3600 + int(mi) * 60 + int(ss)
    utc_s = (local_s - (offset_s if sign == "+" else -offset_s)) % 86_400
    us = int((frac or ".0")[1:].ljust(6, "0")[:6])
    return LimitedValue("timetz offset lost", T.time_micros(utc_s * _US_PER_S + us) + "+00")


def timestamp_range(text: str) -> LimitedValue | None:
    m = _TIMESTAMP.fullmatch(text)
    if m is None:  # infinity, or another rendering: carried
        return None
    y, mo, d, hh, mi, ss, frac, bc = m.groups()
    year = 1 - int(y) if bc else int(y)
    days = T._days_from_civil(year, int(mo), int(d))
    seconds = days * 86_400 + int(hh) * 3600 + int(mi) * 60 + int(ss)
    us = int((frac or ".0")[1:].ljust(6, "0")[:6])
    if -(2**63) <= seconds * _US_PER_S + us <= _INT64_MAX:
        return None
    # seen from the connector: seconds * 10^6 saturates at Long.MAX, then the fraction wraps
    wrapped = (min(seconds * _US_PER_S, _INT64_MAX) + us + 2**63) % 2**64 - 2**63
    return LimitedValue("timestamp out of range", T.timestamp_micros(wrapped))


def _top_level_count(body: str) -> int:
    """Elements of the first dimension of an array literal's ``{...}`` body."""
    depth, count, quoted, escaped = 0, 0, False, False
    for ch in body:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 1:
            count += 1
    return count + 1 if body not in ("{}", "") else 0


def array_shape(text: str) -> LimitedValue | None:
    body = text
    has_bounds = text.startswith("[")
    if has_bounds:
        body = text.split("=", 1)[1] if "=" in text else text
    if body.startswith("{{"):
        n = _top_level_count(body)
        return LimitedValue("2-D array lost", "{" + ",".join(["NULL"] * n) + "}")
    if has_bounds:
        return LimitedValue("array lower bound lost", body)
    return None


def limit_of_type(type_name: str, typmod: int, element: str | None) -> Limit | None:
    """The limit a column of this type can hit (None: its values always arrive exactly)."""
    if element is not None:
        return array_shape
    if type_name == "timetz":
        return timetz_offset
    if type_name == "timestamp" and not 0 <= typmod <= 3:  # MicroTimestamp
        return timestamp_range
    return None


class DebeziumLimits:
    """``change.EncodingLimits`` for Debezium: per table code, the columns that may hit one."""

    def __init__(self) -> None:
        self._limits: dict[int, dict[str, Limit]] = {}

    def add_table(self, table: int, columns: list[dict[str, Any]]) -> None:
        """Register ``table``'s columns (``rows.column_types``)."""
        found = {}
        for col in columns:
            limit = limit_of_type(col["type"], col["typmod"], col["element"])
            if limit is not None:
                found[col["name"]] = limit
        self._limits[table] = found

    def columns(self, table: int) -> tuple[str, ...]:
        return tuple(self._limits.get(table, ()))

    def deliver(self, table: int, column: str, text: str | None) -> LimitedValue | None:
        limit = self._limits.get(table, {}).get(column)
        return None if limit is None or text is None else limit(text)
