"""Load phases: a run as a sequence of (duration, rate, optional mix, optional linear ramp).

``--phases "30s@0-100/s,60s@100/s,10s@500/s,30s@0"`` or a ``[[stream.phase]]`` list in
settings.toml (validated once in ``loadgen.config_values``) becomes a ``PhasePlan``: ramp-up,
steady, burst, idle — BenchBase's phases. An idle phase has rate 0 (no operation is scheduled:
how heartbeats and slot WAL retention are tested). The run lasts the phases' total.

The schedule is a pure function of the clock: ``tokens_by(t)`` is the number of tokens the run
has made by ``t`` seconds after the start (the integral of the rate), ``time_of_token(j)`` its
inverse. ``PhasedTokenBucket`` hands worker ``i`` of ``N`` the run's tokens ``i, i + N, i + 2N
...`` (so the workers interleave at the total rate, as ``RunSpec.worker_specs`` staggers a fixed
rate) with the token bucket's cap: after a stall at most ``burst`` of its tokens are due at once.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen.stream.clock import NS_PER_S

NEVER_NS = 1 << 62  # "no further slot": after the last phase


@dataclass(frozen=True)
class LoadPhase:
    """One phase: ``duration_s`` seconds at ``rate_per_s`` (ops/s, total over workers), or a
    linear ramp from ``rate_per_s`` to ``rate_to_per_s``; ``mix`` (operation -> weight) or None
    for the run's mix."""

    duration_s: float
    rate_per_s: float
    rate_to_per_s: float | None = None
    mix: Mapping[str, float] | None = None
    name: str = ""

    @property
    def end_rate_per_s(self) -> float:
        return self.rate_per_s if self.rate_to_per_s is None else self.rate_to_per_s

    @property
    def num_tokens(self) -> float:
        """Operations the phase schedules (its rate's integral)."""
        return (self.rate_per_s + self.end_rate_per_s) / 2 * self.duration_s

    @property
    def mean_rate_per_s(self) -> float:
        return (self.rate_per_s + self.end_rate_per_s) / 2

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        rate = f"{self.rate_per_s:g}"
        if self.rate_to_per_s is not None:
            rate += f"-{self.rate_to_per_s:g}"
        return f"{self.duration_s:g}s@{rate}/s"


@dataclass(frozen=True)
class PhasePlan:
    """Phases back to back from the run's start; pure."""

    phases: tuple[LoadPhase, ...]
    _starts_s: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _cum_tokens: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a phase plan needs at least one phase")
        starts, cums, t, c = [], [], 0.0, 0.0
        for p in self.phases:
            starts.append(t)
            cums.append(c)
            t += p.duration_s
            c += p.num_tokens
        starts.append(t)
        cums.append(c)
        object.__setattr__(self, "_starts_s", tuple(starts))
        object.__setattr__(self, "_cum_tokens", tuple(cums))

    def __getstate__(self) -> dict[str, Any]:
        return {"phases": self.phases}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "phases", state["phases"])
        self.__post_init__()

    @property
    def duration_s(self) -> float:
        return self._starts_s[-1]

    @property
    def num_tokens(self) -> float:
        return self._cum_tokens[-1]

    def start_s(self, index: int) -> float:
        return self._starts_s[index]

    def phase_at(self, t_s: float) -> int:
        """Index of the phase running ``t_s`` seconds after the start (clamped to the plan)."""
        i = bisect.bisect_right(self._starts_s, t_s) - 1
        return min(max(i, 0), len(self.phases) - 1)

    def rate_at(self, t_s: float) -> float:
        """The target rate (ops/s) at ``t_s``; 0 after the last phase."""
        if t_s < 0 or t_s >= self.duration_s:
            return 0.0
        i = self.phase_at(t_s)
        p, u = self.phases[i], t_s - self._starts_s[i]
        return p.rate_per_s + (p.end_rate_per_s - p.rate_per_s) * u / p.duration_s

    def tokens_by(self, t_s: float) -> float:
        """Tokens made in ``[0, t_s]`` (the rate's integral; constant after the end)."""
        if t_s <= 0:
            return 0.0
        if t_s >= self.duration_s:
            return self.num_tokens
        i = self.phase_at(t_s)
        p, u = self.phases[i], t_s - self._starts_s[i]
        slope = (p.end_rate_per_s - p.rate_per_s) / p.duration_s
        return self._cum_tokens[i] + p.rate_per_s * u + slope * u * u / 2

    def time_of_token(self, j: float) -> float:
        """When token ``j`` (0, 1, 2 ...) appears, s after the start; ``inf`` past the plan."""
        if j >= self.num_tokens:
            return math.inf
        i = bisect.bisect_right(self._cum_tokens, j) - 1
        while self.phases[i].num_tokens <= 0:  # idle phases make no token
            i += 1
        p, d = self.phases[i], j - self._cum_tokens[i]
        a = p.rate_per_s
        b = (p.end_rate_per_s - a) / p.duration_s
        if d <= 0:
            return self._starts_s[i]
        # a u + b u^2 / 2 = d: the stable root (b == 0: a constant rate)
        u = d / a if b == 0 else 2 * d / (a + math.sqrt(max(a * a + 2 * b * d, 0.0)))
        return self._starts_s[i] + min(u, p.duration_s)

    def __str__(self) -> str:
        return ",".join(p.describe() for p in self.phases)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "name": p.name or f"phase {i}",
                "start_s": round(self._starts_s[i], 6),
                "duration_s": p.duration_s,
                "rate_per_s": p.rate_per_s,
                "rate_to_per_s": p.rate_to_per_s,
                "mix": None if p.mix is None else dict(p.mix),
            }
            for i, p in enumerate(self.phases)
        ]


class PhasedTokenBucket:
    """Worker ``worker_id`` of ``num_workers``'s slots under a ``PhasePlan`` (``Arrivals``).

    The run's token ``j`` appears at ``start + plan.time_of_token(j)``; this worker takes the
    tokens ``j = k * num_workers + worker_id``. At most ``burst`` of them are held: older ones
    are dropped (``num_dropped``). After the last phase the next slot is ``NEVER_NS``.
    """

    def __init__(
        self, plan: PhasePlan, burst: int, start_ns: int, *, worker_id: int, num_workers: int
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._plan = plan
        self._burst = burst
        self._start_ns = start_ns
        self._i, self._n = worker_id, num_workers
        self._k = 0
        self.num_dropped = 0

    def next_slot_ns(self, now_ns: int) -> int:
        if now_ns >= self._start_ns:
            made = math.floor(self._plan.tokens_by((now_ns - self._start_ns) / NS_PER_S)) + 1
            appeared = max(0, -(-(made - self._i) // self._n))  # of this worker's tokens
            oldest_kept = appeared - self._burst
            if self._k < oldest_kept:
                self.num_dropped += oldest_kept - self._k
                self._k = oldest_kept
        t_s = self._plan.time_of_token(self._k * self._n + self._i)
        self._k += 1
        if math.isinf(t_s):
            return NEVER_NS
        return self._start_ns + round(t_s * NS_PER_S)


# -- parsing ("30s@0-100/s,60s@100/s,10s@0") ------------------------------------------------

_NUMBER = r"[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?"
_RAMP_RE = re.compile(rf"^\s*(?P<a>{_NUMBER}\s*(?:/\s*[a-z]+)?)\s*-\s*(?P<b>.+?)\s*$")
_PHASE_RE = re.compile(r"^\s*(?P<dur>[^@]+?)\s*@\s*(?P<rate>.+?)\s*$")


def parse_phases(text: str, *, flag: str = "--phases") -> PhasePlan:
    """Parse ``DURATION@RATE[-RATE]`` items, comma-separated (``30s@0-100/s,60s@100/s,5m@0``).

    A rate is a RATE (``100/s``, ``600/min``) or 0 for an idle phase; ``A-B`` ramps linearly
    (the unit of B applies to A when A has none). Raises ConfigError (exit 2).
    """
    from loadgen.errors import ConfigError

    items = [s for s in text.split(",") if s.strip()]
    if not items:
        raise ConfigError(f"{flag}: no phases in {text!r}; expected e.g. 30s@0-100/s,60s@100/s")
    phases = []
    for i, item in enumerate(items):
        m = _PHASE_RE.match(item)
        if m is None:
            raise ConfigError(
                f"{flag}: phase {i + 1} {item.strip()!r} is not DURATION@RATE (e.g. 60s@100/s)"
            )
        phases.append(
            phase_from_table({"duration": m["dur"], "rate": m["rate"]}, f"{flag} phase {i + 1}")
        )
    return check_plan(phases, flag)


def phase_from_table(raw: Mapping[str, Any], label: str) -> LoadPhase:
    """One phase from ``{duration, rate[, rate_to][, mix][, name]}`` (a ``[[stream.phase]]``
    table; ``rate`` may be ``"0-100/s"``). Raises ConfigError naming ``label``."""
    from loadgen import limits
    from loadgen.errors import ConfigError
    from loadgen.stream.rates import parse_duration

    unknown = sorted(set(raw) - {"duration", "rate", "rate_to", "mix", "name"})
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}")
    if "duration" not in raw or "rate" not in raw:
        raise ConfigError(
            f"{label}: needs duration and rate (e.g. duration = '60s', rate = '100/s')"
        )
    duration_s = parse_duration(raw["duration"], flag=f"{label} duration")
    bounds = limits.PHASE_DURATION_RANGE
    if bounds.problem(duration_s):
        raise ConfigError(f"{label}: duration {duration_s:g} s {bounds.problem(duration_s)}")
    rate_text = str(raw["rate"]).strip()
    rate_to_text = None if raw.get("rate_to") is None else str(raw["rate_to"]).strip()
    ramp = _RAMP_RE.match(rate_text.lower()) if rate_to_text is None else None
    if ramp is not None:  # "0-100/s", "600/min-1200/min": B's unit applies to a bare A
        rate_text, rate_to_text = ramp["a"], ramp["b"]
        unit = rate_to_text.partition("/")[2]
        if unit and "/" not in rate_text:
            rate_text = f"{rate_text.strip()}/{unit}"
    rate = _phase_rate(rate_text, f"{label} rate")
    rate_to = None if rate_to_text is None else _phase_rate(rate_to_text, f"{label} rate_to")
    mix = None
    if raw.get("mix") is not None:
        from loadgen.ops.mix import parse_mix

        mix = dict(parse_mix(str(raw["mix"]), label=f"{label} mix"))
    name = str(raw.get("name") or "")
    return LoadPhase(duration_s, rate, rate_to, mix, name)


def _phase_rate(text: str, label: str) -> float:
    from loadgen.errors import ConfigError
    from loadgen.stream.rates import parse_rate

    if re.fullmatch(r"\s*(0+(\.0*)?|\.0+)\s*(/\s*[a-z]+)?\s*", text.lower()):
        return 0.0  # idle
    rate = parse_rate(text, flag=label)
    if rate is None:
        raise ConfigError(f"{label}: a phase's rate must be finite (or 0 for idle), not {text!r}")
    return rate


def check_plan(phases: Sequence[LoadPhase], label: str) -> PhasePlan:
    """A ``PhasePlan`` after the whole-plan checks (count, total duration, some operation)."""
    from loadgen import limits
    from loadgen.errors import ConfigError

    if not 1 <= len(phases) <= limits.MAX_PHASES:
        raise ConfigError(f"{label}: {len(phases)} phases; expected 1..{limits.MAX_PHASES}")
    plan = PhasePlan(tuple(phases))
    if plan.duration_s > limits.MAX_DURATION_S:
        raise ConfigError(f"{label}: phases last {plan.duration_s:g} s, above 365 days")
    if plan.num_tokens < 1:
        raise ConfigError(f"{label}: the phases schedule no operation (every rate is 0)")
    return plan
