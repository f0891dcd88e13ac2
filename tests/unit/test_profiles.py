"""Stream profiles and the scenario-step schedule (pure, no database)."""

from __future__ import annotations

import pytest

from loadgen.config import StreamConfig
from loadgen.errors import ConfigError
from loadgen.scenarios import SCENARIOS
from loadgen.stream import profiles
from loadgen.stream.coordinator import RunSpec
from loadgen.stream.profiles import ScenarioSchedule
from loadgen.stream.report import RunSummary
from loadgen.stream.stats import IntervalStats

NAMES = ("a", "b", "c", "d", "e")
S = 1_000_000_000


def _take(schedule: ScenarioSchedule, num_slots: int, now_ns: int = 0) -> list[str]:
    """Walk ``num_slots`` slots one by one; return what each was ('op' or a scenario)."""
    out = []
    for _ in range(num_slots):
        if schedule.is_due(now_ns):
            out.append(schedule.next_scenario())
            schedule.record_step(now_ns)
        else:
            schedule.record_ops(1)
            out.append("op")
    return out


def test_every_nth_slot_is_a_step_round_robin() -> None:
    schedule = ScenarioSchedule(NAMES, every_ops=4, max_gap_s=None, start_ns=0)
    slots = _take(schedule, 24)
    assert slots == [
        "op",
        "op",
        "op",
        "a",
        "op",
        "op",
        "op",
        "b",
        "op",
        "op",
        "op",
        "c",
        "op",
        "op",
        "op",
        "d",
        "op",
        "op",
        "op",
        "e",
        "op",
        "op",
        "op",
        "a",
    ]


def test_batches_stop_at_the_step() -> None:
    schedule = ScenarioSchedule(NAMES, every_ops=100, max_gap_s=None, start_ns=0)
    assert schedule.ops_until_due() == 99
    schedule.record_ops(60)
    assert schedule.ops_until_due() == 39 and not schedule.is_due(0)
    schedule.record_ops(39)
    assert schedule.ops_until_due() == 0 and schedule.is_due(0)


def test_workers_start_at_offsets_and_cover_every_scenario_together() -> None:
    names = tuple(SCENARIOS)
    seen: set[str] = set()
    for worker_id in range(2):
        schedule = ScenarioSchedule(
            names, every_ops=1, max_gap_s=None, start_ns=0, worker_id=worker_id, num_workers=2
        )
        seen.update(_take(schedule, (len(names) + 1) // 2))
    assert seen == set(names)


def test_time_rule_needs_a_hospital_op_since_the_last_step() -> None:
    schedule = ScenarioSchedule(NAMES, every_ops=1000, max_gap_s=60.0, start_ns=0)
    assert not schedule.is_due(61 * S)  # nothing ran yet: a slow stream is not all scenarios
    schedule.record_ops(1)
    assert not schedule.is_due(59 * S)
    assert schedule.is_due(61 * S)
    schedule.record_step(61 * S)
    schedule.record_ops(1)
    assert not schedule.is_due(100 * S) and schedule.is_due(121 * S)


def test_weight_to_every_ops() -> None:
    assert profiles.every_ops(0.01) == 100
    assert profiles.every_ops(1.0) == 1
    assert profiles.every_ops(0.3) == 3
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="--scenario-weight"):
            profiles.every_ops(bad)


def _run_spec(**stream: object) -> RunSpec:
    return RunSpec.from_settings(StreamConfig(**stream), dsn="")  # type: ignore[arg-type]


def test_run_spec_from_profiles() -> None:
    default = _run_spec()
    assert (default.profile, default.scenarios, default.scenario_every_ops) == ("default", (), 0)
    edge = _run_spec(profile="cdc-edge")
    assert edge.scenarios == tuple(SCENARIOS) and edge.scenario_every_ops == 100
    assert edge.scenario_max_gap_s == 300.0
    some = _run_spec(profile="CDC-Edge", scenarios="truncate, pk-update", scenario_weight=0.5)
    assert some.scenarios == ("pk-update", "truncate")  # registry order
    assert some.scenario_every_ops == 2


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"profile": "nope"}, "--profile 'nope': unknown profile; allowed: default, cdc-edge"),
        ({"profile": "cdc-edge", "scenarios": "pk-update,bogus"}, "unknown scenario(s) bogus"),
        ({"profile": "cdc-edge", "scenarios": ","}, "unknown scenario(s) (none given)"),
        ({"scenarios": "all"}, "--scenarios: profile 'default' mixes no scenarios in"),
        ({"scenario_weight": 0.5}, "--scenario-weight: profile 'default' mixes no scenarios in"),
        ({"profile": "cdc-edge", "scenario_weight": 2.0}, "--scenario-weight 2.0: must be > 0"),
    ],
)
def test_bad_profile_settings(stream: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _run_spec(**stream)
    assert message in str(info.value)


def test_summary_counts_scenario_steps_in_their_own_bucket() -> None:
    stats = IntervalStats()
    stats.record_commit(["insert_consulta", "update_exame"], [], [0, 0], 10, 20)
    stats.record_scenario_step("scenario:truncate", 6, 12, 0, 5, 4_000_000)
    summary = RunSummary(
        total=stats,
        elapsed_s=1.0,
        num_workers=1,
        target_rate_per_s=None,
        seed=1,
        stop_reason="max_ops",
        profile="cdc-edge",
        has_scenarios=True,
    )
    data = summary.to_json()
    assert data["by_kind"] == {"insert": 1, "update": 1, "delete": 0, "scenario": 1}
    assert data["total_ops"] == 3 and data["committed_txns"] == 7
    assert data["latency_ms"]["max"] < 1  # a step's duration stays out of the op latency
    assert data["scenario_steps"]["steps"] == 1
    assert data["scenario_steps"]["row_changes"] == 12
    assert data["scenario_steps"]["latency_ms"]["max"] == pytest.approx(4.0, rel=0.01)
    plain = RunSummary(
        total=IntervalStats(),
        elapsed_s=1.0,
        num_workers=1,
        target_rate_per_s=None,
        seed=1,
        stop_reason="max_ops",
    )
    assert "scenario" not in plain.to_json()["by_kind"]
