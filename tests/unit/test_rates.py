"""RATE and DURATION parsing: good values and one-line ConfigErrors for bad ones."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.stream.rates import format_rate, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("200/min", 200 / 60),
        ("50/s", 50.0),
        ("3/h", 3 / 3600),
        ("1/h", 1 / 3600),
        ("0.5/s", 0.5),
        ("10", 10.0),
        ("5000/sec", 5000.0),
        ("2/hours", 2 / 3600),
        (" 12 / Minute ", 12 / 60),
    ],
)
def test_parse_rate_good(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


def test_parse_rate_unlimited_is_none() -> None:
    assert parse_rate("unlimited") is None
    assert parse_rate("UNLIMITED") is None


@pytest.mark.parametrize("text", ["5/fortnight", "0/s", "-1/s", "abc", "", "/s", "1/", "nan/s"])
def test_parse_rate_bad(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rate(text)
    message = str(info.value)
    assert message.startswith("--rate")
    assert "\n" not in message


def test_parse_rate_names_the_unit() -> None:
    with pytest.raises(ConfigError, match="fortnight"):
        parse_rate("5/fortnight")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("1.5h", 5400.0), (2.5, 2.5)],
)
def test_parse_duration_good(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "5x", "m", "", "1h30m", 0])
def test_parse_duration_bad(text: str | int) -> None:
    with pytest.raises(ConfigError, match="--duration"):
        parse_duration(text)


def test_format_rate() -> None:
    assert format_rate(None) == "unlimited"
    assert format_rate(50.0) == "50/s"
    assert format_rate(200 / 60) == "200/min"
    assert format_rate(3 / 3600) == "3/h"


@pytest.mark.parametrize("text", ["unlimited", "inf", "INF/s", "inf/min", "max", "infinity/h"])
def test_every_spelling_of_unlimited_is_unlimited(text: str) -> None:
    assert parse_rate(text) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1e20/s", "above the maximum, 1,000,000/s; use unlimited"),
        ("1e400/s", "above the maximum"),  # overflows to inf: too large, not "must be > 0"
        ("1000001", "above the maximum"),
        ("0.5/d", "below the minimum, one operation a day"),
        ("1e-300/s", "below the minimum"),
        ("inf/fortnight", "invalid rate"),
        ("0/s", "greater than 0"),
    ],
)
def test_rate_outside_its_range(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_rate(text)


def test_rate_range_ends_are_allowed() -> None:
    assert parse_rate("1/d") == pytest.approx(1 / 86_400)
    assert parse_rate("1000000/s") == 1_000_000.0


def test_duration_at_most_a_year() -> None:
    assert parse_duration("365d") == 365 * 86_400
    with pytest.raises(ConfigError, match="above the maximum, 365 days"):
        parse_duration("366d")
    with pytest.raises(ConfigError, match="above the maximum"):
        parse_duration(float("inf"))
