"""Time helpers for the generators: a reference instant and vectorised date/time draws.

All instants are TIMESTAMP WITHOUT TIME ZONE values interpreted as UTC. Internally they are
``int64`` seconds since the Unix epoch; columns leave as ``datetime64[s]`` (timestamps) or
``datetime64[D]`` (dates), with ``NaT`` for NULL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
DAY_S = 86_400
YEAR_S = 365.2425 * DAY_S
NAT = np.iinfo(np.int64).min  # datetime64's NaT as int64


def epoch_s(now: datetime) -> int:
    """Return ``now`` as int seconds since the epoch; a naive datetime is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp())


def reference_day(today: date | None = None) -> datetime:
    """Return the seed's reference instant: ``today`` (default: the current UTC date) 00:00 UTC.

    Seeded rows are anchored here, so the same ``--seed`` gives identical rows all day long.
    """
    day = today if today is not None else datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def to_timestamp(seconds: Int64Array) -> npt.NDArray[np.datetime64]:
    """View int64 epoch seconds (``NAT`` for NULL) as ``datetime64[s]``."""
    return np.asarray(seconds, dtype=np.int64).view("datetime64[s]")


def to_date(seconds: Int64Array) -> npt.NDArray[np.datetime64]:
    """Convert int64 epoch seconds to ``datetime64[D]`` (floor to the UTC day)."""
    return (np.asarray(seconds, dtype=np.int64) // DAY_S).astype("datetime64[D]")


def slot_times(
    rng: np.random.Generator,
    day0_s: int,
    day_lo: int,
    day_hi: int,
    n: int,
    *,
    first_hour: int = 8,
    num_slots: int = 40,
    slot_s: int = 900,
) -> Int64Array:
    """Draw appointment instants: a day in ``[day_lo, day_hi]`` relative to ``day0_s``, then a slot.

    Args:
        rng: the chunk's generator.
        day0_s: epoch seconds of the reference day's 00:00.
        day_lo: first day offset (inclusive, may be negative).
        day_hi: last day offset (inclusive).
        n: how many.
        first_hour: hour of the first slot (UTC, as stored).
        num_slots: slots per day.
        slot_s: slot length in seconds (default 15 min: 08:00 .. 17:45).

    Returns:
        ``int64`` epoch seconds, shape ``(n,)``.
    """
    days = rng.integers(day_lo, day_hi + 1, n)
    slots = rng.integers(0, num_slots, n)
    return day0_s + days * DAY_S + first_hour * 3600 + slots * slot_s
