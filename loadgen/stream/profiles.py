"""Stream profiles (``loadgen stream --profile``) as data, and the scenario-step schedule.

A profile names what a stream mixes into the hospital load. ``default`` is the hospital load
alone; ``cdc-edge`` mixes in the CDC edge-case scenarios (``loadgen.scenarios``) at a low weight,
so a long run exercises every one of them continuously. ``PROFILES`` is the one place that knows
them; a profile read from a config file later would build the same ``Profile``.

``ScenarioSchedule`` is pure: it decides which of a worker's operation slots are scenario steps
(every ``every_ops``-th slot, and one at least every ``max_gap_s`` seconds as long as a hospital
operation ran since the last step) and which scenario each step runs (round-robin, each worker
starting at its own offset so that N workers cover the list N times faster).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.errors import ConfigError
from loadgen.op_names import SCENARIO_OP_PREFIX as SCENARIO_OP_PREFIX  # the engine's names
from loadgen.op_names import is_scenario_op as is_scenario_op
from loadgen.op_names import scenario_op_name as scenario_op_name
from loadgen.stream.clock import NS_PER_S

SCENARIO_KIND = "scenario"  # its bucket in the summary's by_kind


@dataclass(frozen=True)
class Profile:
    """What a stream mixes into the hospital load."""

    name: str  # --profile value
    description: str  # one line for --help and the README
    scenario_weight: float = 0.0  # fraction of operations that are scenario steps (0 = none)
    scenario_max_gap_s: float | None = None  # a worker runs a step at least this often, s
    scenarios: tuple[str, ...] | None = None  # scenario names; None = every registered one


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("default", "the hospital load alone (the original's eight operations or --mix)"),
        Profile(
            "cdc-edge",
            "the hospital load with every CDC edge-case scenario mixed in: 1 % of "
            "operations are scenario steps (at least one per worker every 5 minutes), "
            "round-robin over the scenarios",
            scenario_weight=0.01,
            scenario_max_gap_s=300.0,
        ),
    )
}


def get(name: str) -> Profile:
    """The profile called ``name``. Raises ConfigError naming the allowed profiles."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"--profile {name!r}: unknown profile; allowed: {', '.join(PROFILES)}"
        ) from None


def resolve_scenarios(profile: Profile, spec: str | None, known: Sequence[str]) -> tuple[str, ...]:
    """The scenarios a run mixes in: ``--scenarios a,b`` when given, else the profile's.

    Args:
        profile: the chosen profile.
        spec: ``--scenarios`` (comma-separated names, or ``all``); None = the profile's list.
        known: every registered scenario name, in registry order.

    Returns:
        The names, in registry order, without repeats; empty when the profile mixes none in.

    Raises:
        ConfigError: unknown name, empty list, or ``--scenarios`` with a profile that mixes no
            scenarios in.
    """
    if spec is None:
        if profile.scenario_weight <= 0:
            return ()
        return tuple(profile.scenarios) if profile.scenarios is not None else tuple(known)
    if profile.scenario_weight <= 0:
        mixing = [p.name for p in PROFILES.values() if p.scenario_weight > 0]
        raise ConfigError(
            f"--scenarios: profile {profile.name!r} mixes no scenarios in; use "
            f"--profile {' or '.join(mixing)}"
        )
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(known)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"--scenarios {spec!r}: unknown scenario(s) "
            f"{', '.join(unknown) or '(none given)'}; allowed: all or "
            f"{', '.join(known)}"
        )
    return tuple(n for n in known if n in names)


def every_ops(weight: float) -> int:
    """Slots per scenario step for a weight (fraction of operations): 0.01 → every 100th."""
    if not 0 < weight <= 1 or math.isnan(weight):
        raise ConfigError(f"--scenario-weight {weight!r}: must be > 0 and <= 1")
    return max(1, round(1 / weight))


class ScenarioSchedule:
    """Which slots of one worker are scenario steps, and which scenario each runs. Pure.

    Not thread-safe; one per worker. Times are monotonic ns given by the caller.

    Args:
        scenarios: the names to cycle through (non-empty).
        every_ops: one slot in this many is a step (1 = every slot).
        max_gap_s: also make a step due when none ran for this long, provided a hospital
            operation ran since the last one (so a slow stream never becomes scenarios only);
            None = no time rule.
        start_ns: the run's start (the gap is counted from it).
        worker_id, num_workers: the round-robin starts at ``worker_id * n // num_workers``.
    """

    def __init__(
        self,
        scenarios: Sequence[str],
        every_ops: int,
        max_gap_s: float | None,
        start_ns: int,
        *,
        worker_id: int = 0,
        num_workers: int = 1,
    ) -> None:
        if not scenarios or every_ops < 1:
            raise ValueError("a schedule needs scenarios and every_ops >= 1")
        self.scenarios = tuple(scenarios)
        self.every_ops = every_ops
        self.max_gap_ns = None if max_gap_s is None else round(max_gap_s * NS_PER_S)
        self.last_step_ns = start_ns  # when the last step ran (or the run started)
        self.num_since_step = 0  # hospital operations since the last step
        self.num_steps = 0
        self._offset = worker_id * len(self.scenarios) // max(num_workers, 1)

    def ops_until_due(self) -> int:
        """Hospital operations that may run before the next step is due by count (>= 0)."""
        return max(self.every_ops - 1 - self.num_since_step, 0)

    def is_due(self, now_ns: int) -> bool:
        """True when the next slot should be a scenario step."""
        if self.ops_until_due() == 0:
            return True
        return (
            self.max_gap_ns is not None
            and self.num_since_step > 0
            and now_ns - self.last_step_ns >= self.max_gap_ns
        )

    def next_scenario(self) -> str:
        """The scenario the next step runs (round-robin from this worker's offset)."""
        return self.scenarios[(self._offset + self.num_steps) % len(self.scenarios)]

    def record_ops(self, num_ops: int) -> None:
        """Count hospital operation slots taken (committed or not)."""
        self.num_since_step += num_ops

    def record_step(self, now_ns: int) -> None:
        """A step's slot was taken (whatever its outcome): the next one moves on."""
        self.num_steps += 1
        self.num_since_step = 0
        self.last_step_ns = now_ns
