"""Parse the stream's RATE and DURATION values (pure; bad input raises ConfigError, exit 2).

RATE is the total for the run, all workers together, in operations: ``200/min``, ``50/s``,
``3/h``, ``0.5/s``, a bare number (per second) or ``unlimited`` (also ``max``, ``inf``, with or
without a unit); from one a day to a million a second (``loadgen.limits``). DURATION is ``90``,
``90s``, ``5m``, ``1h`` or ``1.5h``, at most a year.
"""

from __future__ import annotations

import math
import re

from loadgen.errors import ConfigError
from loadgen.limits import MAX_DURATION_S, MAX_RATE_PER_S, MIN_RATE_PER_S

UNLIMITED = "unlimited"
_UNLIMITED_WORDS = (UNLIMITED, "max", "inf", "infinity")

# unit spelling -> seconds per unit
_RATE_UNITS_S: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_DURATION_UNITS_S: dict[str, float] = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE_RE = re.compile(
    r"^\s*(?P<count>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(?:/\s*(?P<unit>[a-z]+))?\s*$"
)
_DURATION_RE = re.compile(r"^\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>[a-z]*)\s*$")
_RATE_ALLOWED = "a count per s, min, h or d (e.g. 200/min, 50/s, 3/h) or 'unlimited'"
_DURATION_ALLOWED = "seconds or a number with s, m, h or d (e.g. 90, 90s, 5m, 1h)"


def parse_rate(text: str, *, flag: str = "--rate") -> float | None:
    """Turn a RATE string into operations per second.

    Args:
        text: e.g. ``"200/min"``; case-insensitive; ``"unlimited"`` means no limit.
        flag: how the message names the value's source (a flag or a config key).

    Returns:
        Operations per second (``MIN_RATE_PER_S`` .. ``MAX_RATE_PER_S``), or ``None`` for
        ``unlimited`` (``max``, ``inf``, ``infinity``; ``inf/s`` too: a unit changes nothing).

    Raises:
        ConfigError: unknown unit, not a number, zero, negative, or out of range.
    """
    lowered = text.strip().lower()
    word, _, unit_part = lowered.partition("/")
    if word.strip() in _UNLIMITED_WORDS and (
        not unit_part or _unit(unit_part.strip()) in _RATE_UNITS_S
    ):
        return None
    match = _RATE_RE.match(lowered)
    if match is None:
        raise ConfigError(f"{flag}: invalid rate {text!r}; expected {_RATE_ALLOWED}")
    unit = _unit(match["unit"] or "s")
    if unit not in _RATE_UNITS_S:
        raise ConfigError(
            f"{flag}: unknown unit {match['unit']!r} in rate {text!r}; expected {_RATE_ALLOWED}"
        )
    rate_per_s = float(match["count"]) / _RATE_UNITS_S[unit]
    if not rate_per_s > 0:
        raise ConfigError(f"{flag}: rate must be greater than 0, got {text!r}")
    if not math.isfinite(rate_per_s) or rate_per_s > MAX_RATE_PER_S:
        raise ConfigError(
            f"{flag}: rate {text!r} is above the maximum, {MAX_RATE_PER_S:,.0f}/s;"
            " use unlimited for as fast as the server goes"
        )
    if rate_per_s < MIN_RATE_PER_S * (1 - 1e-9):
        raise ConfigError(f"{flag}: rate {text!r} is below the minimum, one operation a day")
    return rate_per_s


def _unit(spelling: str) -> str:
    """A rate unit's canonical key: plurals (``hours``, ``mins``) lose their ``s``."""
    if spelling.endswith("s") and spelling[:-1] in _RATE_UNITS_S:
        return spelling[:-1]
    return spelling


def parse_duration(text: str | float | int, *, flag: str = "--duration") -> float:
    """Turn a DURATION string (or a number of seconds) into seconds.

    Raises:
        ConfigError: not a number with a known unit, zero, negative or over a year.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        duration_s = float(text)
    else:
        match = _DURATION_RE.match(str(text).lower())
        if match is None or match["unit"] not in _DURATION_UNITS_S:
            raise ConfigError(f"{flag}: invalid duration {text!r}; expected {_DURATION_ALLOWED}")
        duration_s = float(match["value"]) * _DURATION_UNITS_S[match["unit"]]
    if not duration_s > 0:
        raise ConfigError(f"{flag}: duration must be greater than 0, got {text!r}")
    if not (math.isfinite(duration_s) and duration_s <= MAX_DURATION_S):
        raise ConfigError(f"{flag}: duration {text!r} is above the maximum, 365 days")
    return duration_s


def format_rate(rate_per_s: float | None) -> str:
    """Render a rate for people: ``"3.33/s (200/min)"``; ``"unlimited"`` for ``None``."""
    if rate_per_s is None:
        return UNLIMITED
    for unit, seconds in (("s", 1), ("min", 60), ("h", 3600)):
        count = rate_per_s * seconds
        if count >= 1 and abs(count - round(count)) < 1e-9 * count:
            return f"{round(count)}/{unit}"
    return f"{rate_per_s:.4g}/s" if rate_per_s >= 1 else f"{rate_per_s * 3600:.4g}/h"
