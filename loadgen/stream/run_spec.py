"""The plan of one stream run (``RunSpec``) and how it is split into the workers' shares.

Built in the CLI's process from the validated settings (``RunSpec.from_settings``) or directly
by a caller (tests, benchmarks); pure: no database, no processes.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.config import StreamConfig
from loadgen.db import DEFAULT_RETRY_FOR_S
from loadgen.errors import ConfigError
from loadgen.shards import WHOLE, Shard
from loadgen.stream.phases import PhasePlan
from loadgen.stream.worker_spec import WorkerSpec

BURST_WINDOW_S = 1.0  # default token-bucket capacity: one second of operations per worker


@dataclass(frozen=True)
class RunSpec:
    """A validated plan for one stream run (from ``StreamConfig`` and the DSN)."""

    dsn: str
    num_workers: int
    rate_per_s: float | None  # total over all workers; None = unlimited or paced
    is_paced: bool  # no --rate: the original's pace (interval_s + jitter)
    arrivals: str  # token-bucket | poisson | uniform
    burst: int | None  # token-bucket capacity, total over workers; None = default
    duration_s: float | None
    max_ops: int | None
    batch_size: int
    mix: dict[str, float]
    seed: int
    report_interval_s: float
    interval_s: float
    max_jitter_ms: int
    fail_fast_on_critical: bool = False
    ledger: str | None = None
    ledger_fsync: bool = True  # fdatasync each intent before COMMIT (docs/ledger.md)
    connect_retry_s: float = DEFAULT_RETRY_FOR_S  # [db] connect_retry_s: connects, reconnects
    profile: str = "default"  # loadgen.stream.profiles.PROFILES
    scenarios: tuple[str, ...] = ()  # scenarios mixed in (cdc-edge); empty = none
    scenario_every_ops: int = 0  # one slot in this many is a scenario step (0 = none)
    scenario_max_gap_s: float | None = None  # and at least one per worker this often, s
    phases: PhasePlan | None = None  # --phases: rate (and mix) over time; sets the duration
    timeseries: str | None = None  # --timeseries FILE (loadgen.stream.timeseries)
    # this run is shard I of N of a bigger run (loadgen.shards): rate, burst, max-ops and pace
    # above are already this shard's share; ``seed`` is this shard's, derived from ``run_seed``
    shard: Shard = WHOLE
    run_seed: int | None = None  # the whole run's --seed (None: not sharded, see ``seed``)
    markers_s: float | None = None  # --markers: s between logical messages (stream.markers)

    @classmethod
    def from_settings(
        cls,
        stream: StreamConfig,
        dsn: str,
        *,
        connect_retry_s: float = DEFAULT_RETRY_FOR_S,
        shard: Shard = WHOLE,
    ) -> RunSpec:
        """A plan from the ``[stream]`` settings. Raises ConfigError (exit 2).

        ``stream`` comes from ``config.load``, the one place that validates settings: ranges
        and choices are checked and rate, duration and mix are already parsed; only the
        profile's scenario choice is resolved here. ``connect_retry_s`` is
        ``[db] connect_retry_s``. With a ``shard`` (``--shard I/N``) the plan is that shard's:
        1/N of the rate, burst and ``--max-ops`` (exact integer shares), N times the pace
        interval, and a seed derived from the run's (``Shard.seed_for``).
        """
        from loadgen.ops.mix import default_mix
        from loadgen.stream import profiles

        plan = None if stream.phase is None else stream.phase.plan
        if plan is not None and not shard.is_whole:
            raise ConfigError(
                f"--phases with --shard {shard}: not supported yet (split the phases' rates by"
                " hand: each shard's --phases with 1/N of every rate)"
            )
        rate_per_s = shard.rate_share(stream.rate.per_s if stream.rate is not None else None)
        if plan is not None:  # the phases' mean rate; their total is the duration
            rate_per_s = plan.num_tokens / plan.duration_s
        run_seed = stream.seed if stream.seed is not None else secrets.randbits(63)
        max_ops = stream.max_ops
        if max_ops is not None and not shard.is_whole:
            if max_ops < shard.count:
                raise ConfigError(
                    f"--max-ops {max_ops}: fewer than the {shard.count} shards (each needs one)"
                )
            max_ops = shard.share(max_ops)
        burst = stream.burst
        if burst is not None and not shard.is_whole:
            burst = max(1, math.ceil(burst / shard.count))
        profile = profiles.get(stream.profile)
        scenarios: tuple[str, ...] = ()
        if profile.scenario_weight > 0 or stream.scenarios is not None:
            from loadgen.scenarios import SCENARIOS

            scenarios = profiles.resolve_scenarios(profile, stream.scenarios, list(SCENARIOS))
        if stream.scenario_weight is not None and not scenarios:
            raise ConfigError(
                f"--scenario-weight: profile {profile.name!r} mixes no scenarios "
                "in; use --profile cdc-edge"
            )
        weight = (
            stream.scenario_weight
            if stream.scenario_weight is not None
            else profile.scenario_weight
        )
        return cls(
            dsn=dsn,
            num_workers=stream.workers,
            rate_per_s=rate_per_s,
            is_paced=stream.rate is None and plan is None,
            arrivals=stream.arrivals,
            burst=burst,
            duration_s=plan.duration_s if plan is not None else stream.duration,
            max_ops=max_ops,
            batch_size=stream.batch_size,
            mix=dict(stream.mix.weights) if stream.mix is not None else default_mix(),
            seed=shard.seed_for(run_seed),
            report_interval_s=stream.report_interval_s,
            interval_s=stream.interval_s * shard.count,
            max_jitter_ms=stream.max_jitter_ms,
            fail_fast_on_critical=stream.fail_fast_on_critical,
            ledger=stream.ledger,
            connect_retry_s=connect_retry_s,
            profile=profile.name,
            scenarios=scenarios,
            scenario_every_ops=profiles.every_ops(weight) if scenarios else 0,
            scenario_max_gap_s=profile.scenario_max_gap_s if scenarios else None,
            phases=plan,
            timeseries=stream.timeseries,
            shard=shard,
            run_seed=None if shard.is_whole else run_seed,
            markers_s=stream.markers_s,
        )

    @property
    def target_rate_per_s(self) -> float | None:
        """Operations per second asked for (None when unlimited)."""
        if self.is_paced:
            return 1.0 / self.interval_s if self.interval_s > 0 else None
        return self.rate_per_s

    def worker_specs(self) -> list[WorkerSpec]:
        """Split rate, burst and max-ops across workers; the shares add up exactly.

        Under a rate, worker ``i``'s first token comes at ``i / rate`` (a phase), so the run's
        tokens interleave at the total rate from the start: at ``1/h`` one operation happens in
        the first hour, not one per worker at t=0. Shard ``I`` of ``N`` adds
        ``I / (N * rate)``, so the shards' tokens interleave too.
        """
        n = self.num_workers
        children = np.random.SeedSequence(self.seed).spawn(n)
        per_worker_rate = None if self.rate_per_s is None else self.rate_per_s / n
        peak_rate = per_worker_rate
        if self.phases is not None:  # a second of the fastest phase
            peak_rate = max(max(p.rate_per_s, p.end_rate_per_s) for p in self.phases.phases) / n
        if self.burst is not None:
            burst = max(1, math.ceil(self.burst / n))
        else:
            burst = max(self.batch_size, math.ceil((peak_rate or 0) * BURST_WINDOW_S))
        if self.is_paced:
            arrivals = "pace" if self.interval_s > 0 else "closed"
        else:
            arrivals = "closed" if self.rate_per_s is None else self.arrivals
        shard = self.shard
        shard_phase_s = (
            0.0
            if self.rate_per_s is None or self.is_paced
            else shard.index / (shard.count * self.rate_per_s)
        )
        specs = []
        for i in range(n):
            share = None
            if self.max_ops is not None:
                share = self.max_ops // n + (1 if i < self.max_ops % n else 0)
            specs.append(
                WorkerSpec(
                    worker_id=i,
                    num_workers=n,
                    dsn=self.dsn,
                    seed_seq=children[i],
                    mix=self.mix,
                    arrivals=arrivals,
                    rate_per_s=per_worker_rate,
                    burst=burst,
                    interval_s=self.interval_s,
                    max_jitter_ms=self.max_jitter_ms,
                    duration_s=self.duration_s,
                    max_ops=share,
                    batch_size=self.batch_size,
                    report_interval_s=self.report_interval_s,
                    fail_fast_on_critical=self.fail_fast_on_critical,
                    ledger=self.ledger,
                    ledger_fsync=self.ledger_fsync,
                    connect_retry_s=self.connect_retry_s,
                    scenarios=self.scenarios,
                    scenario_every_ops=self.scenario_every_ops,
                    scenario_max_gap_s=self.scenario_max_gap_s,
                    phases=self.phases,
                    phase_s=0.0
                    if self.rate_per_s is None or self.is_paced
                    else i / self.rate_per_s + shard_phase_s,
                    shard_index=shard.index,
                    shard_count=shard.count,
                )
            )
        return specs

    def describe(self, run_id: str) -> dict[str, Any]:
        """The plan for a timeseries header and a report (JSON-ready, no DSN)."""
        return {
            "run_id": run_id,
            "workers": self.num_workers,
            "target_rate_per_s": self.target_rate_per_s,
            "arrivals": "phases" if self.phases is not None else self.arrivals,
            "duration_s": self.duration_s,
            "max_ops": self.max_ops,
            "batch_size": self.batch_size,
            "mix": self.mix,
            "seed": self.seed,
            "profile": self.profile,
            "ledger": self.ledger,
            "markers_s": self.markers_s,
        }
