"""Load phases (pure): the schedule is the rate's integral, parsing and validation are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen import config
from loadgen.errors import ConfigError
from loadgen.stream.clock import NS_PER_S
from loadgen.stream.phases import NEVER_NS, PhasedTokenBucket, parse_phases


def test_tokens_follow_a_ramp_a_steady_phase_and_skip_an_idle_one() -> None:
    plan = parse_phases("10s@0-100/s,10s@100/s,5s@0,5s@600/min")
    assert plan.duration_s == 30 and plan.num_tokens == 500 + 1000 + 0 + 50
    assert plan.tokens_by(5) == pytest.approx(125)  # a ramp's integral is quadratic
    assert plan.rate_at(5) == pytest.approx(50) and plan.rate_at(22) == 0
    assert plan.time_of_token(500) == pytest.approx(10)
    assert plan.time_of_token(1500) == pytest.approx(25)  # the idle phase makes no token
    assert math.isinf(plan.time_of_token(1550))
    times = np.array([plan.time_of_token(j) for j in range(1550)])
    assert (np.diff(times) >= 0).all()
    for j in (1, 77, 499, 1200, 1549):  # inverse of the integral
        assert plan.tokens_by(times[j]) == pytest.approx(j, abs=1e-6)


@pytest.mark.parametrize("num_workers", [1, 3])
def test_workers_share_the_tokens_exactly(num_workers: int) -> None:
    plan = parse_phases("2s@10-50/s,1s@0,2s@40/s")
    buckets = [
        PhasedTokenBucket(plan, 1000, 0, worker_id=i, num_workers=num_workers)
        for i in range(num_workers)
    ]
    slots = []
    for b in buckets:
        while (s := b.next_slot_ns(0)) != NEVER_NS:
            slots.append(s)
    assert len(slots) == plan.num_tokens == 140
    expected = sorted(round(plan.time_of_token(j) * NS_PER_S) for j in range(140))
    assert sorted(slots) == expected


def test_a_stalled_worker_keeps_at_most_burst_tokens() -> None:
    plan = parse_phases("10s@100/s")
    bucket = PhasedTokenBucket(plan, 5, 0, worker_id=0, num_workers=1)
    first = bucket.next_slot_ns(3 * NS_PER_S)  # 301 tokens made by t=3 s: 296 dropped
    assert bucket.num_dropped == 296 and first == round(plan.time_of_token(296) * NS_PER_S)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no phases"),
        ("10s", "not DURATION@RATE"),
        ("10x@5/s", "invalid duration"),
        ("10s@5/fortnight", "unknown unit"),
        ("10s@0,5s@0", "schedule no operation"),
        ("0.01s@5/s", "must be 0.1"),
        ("10s@unlimited", "must be finite"),
    ],
)
def test_bad_phases_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_phases(text)


def test_settings_toml_phase_tables_with_a_mix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "settings.toml"
    path.write_text(
        "[[stream.phase]]\nduration = '5s'\nrate = '0-20/s'\nname = 'ramp'\n"
        "[[stream.phase]]\nduration = '5s'\nrate = '20/s'\nmix = 'insert=1'\n"
    )
    settings = config.load(config_path=path, env={})
    assert settings.stream.phase is not None
    plan = settings.stream.phase.plan
    assert [p.name for p in plan.phases] == ["ramp", ""]
    assert plan.phases[1].mix is not None and set(plan.phases[1].mix.values()) != {0}
    assert plan.num_tokens == 50 + 100
    path.write_text("[[stream.phase]]\nduration = '5s'\nrate = '20/s'\nspeed = 2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        config.load(config_path=path, env={})


def test_phases_exclude_rate_and_duration() -> None:
    settings = config.load({"stream": {"phase": "5s@10/s", "rate": "5/s"}}, env={})
    with pytest.raises(ConfigError, match="--rate cannot go with --phases"):
        config.check_stream(settings)


@pytest.mark.parametrize(
    ("text", "rates"),
    [
        ("1m@600/min-1200/min", (10.0, 20.0)),
        ("10s@5-10", (5.0, 10.0)),
        ("10s@ 5 / s - 10/s", (5.0, 10.0)),
        ("10s@5/s-0", (5.0, 0.0)),
        ("100s@1e-1/s", (0.1, None)),
    ],
)
def test_ramp_spellings(text: str, rates: tuple[float, float | None]) -> None:
    phase = parse_phases(text).phases[0]
    assert (phase.rate_per_s, phase.rate_to_per_s) == pytest.approx(rates)
