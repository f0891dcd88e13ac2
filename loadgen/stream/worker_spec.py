"""What one worker needs (``WorkerSpec``, built by the coordinator) and the schedule it follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.stream.arrivals import (
    Arrivals,
    ClosedLoop,
    JitteredArrivals,
    PoissonArrivals,
    TokenBucket,
    UniformArrivals,
)
from loadgen.stream.clock import NS_PER_MS, NS_PER_S
from loadgen.stream.phases import PhasedTokenBucket, PhasePlan
from loadgen.stream.tally import TallyLayout


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker needs; built by the coordinator, pickled to the worker."""

    worker_id: int
    num_workers: int
    dsn: str
    seed_seq: np.random.SeedSequence  # this worker's child of SeedSequence(run seed)
    mix: dict[str, float]  # operation name -> relative weight
    arrivals: str  # "token-bucket" | "poisson" | "uniform" | "pace" | "closed"
    rate_per_s: float | None  # this worker's share of the rate; None with "pace"/"closed"
    burst: int  # token-bucket capacity for this worker, operations
    interval_s: float  # "pace": seconds between operations of the whole run
    max_jitter_ms: int  # "pace": random extra delay per operation, ms
    duration_s: float | None  # stop scheduling this long after the start; None = no limit
    max_ops: int | None  # this worker's exact share of --max-ops; None = no limit
    batch_size: int  # operations per transaction at most
    report_interval_s: float  # seconds between stats deltas
    fail_fast_on_critical: bool  # a critical SQL error ends the worker (and the run)
    ledger: str | None  # ledger path for LedgerWriter; None = no ledger
    connect_retry_s: float = 30.0  # [db] connect_retry_s: give up after this long without a server
    max_tries: int = 5  # attempts per transaction on serialization failure / deadlock
    scenarios: tuple[str, ...] = ()  # scenarios mixed in (--profile cdc-edge); empty = none
    scenario_every_ops: int = 0  # one slot in this many is a scenario step
    scenario_max_gap_s: float | None = None  # and at least one step this often, s
    phase_s: float = 0.0  # this worker's first token/slot comes this long after the start, s
    run_id: str = ""  # the run's id: in the ledger part names and headers
    # rows present before the run that it may update/delete (loadgen.stream.ownership); None =
    # every row, and no live-run lock (a worker outside a coordinated run, e.g. in a test)
    owned_max_ids: dict[str, int] | None = None
    tally_layout: TallyLayout | None = None  # with ``tally``: the shared commit counts
    tally: Any = None  # multiprocessing.RawArray('q', ...) of this worker's CommitTally
    ledger_fsync: bool = True  # fdatasync every intent before COMMIT (the ledger contract)
    parent_pid: int = 0  # the coordinator's pid: the worker stops when it dies (0 = not watched)
    phases: PhasePlan | None = None  # --phases: the run's rate over time (arrivals "phased")
    shard_index: int = 0  # this run is shard I of N (loadgen.shards): it owns id % N == I
    shard_count: int = 1


def build_arrivals(spec: WorkerSpec, start_ns: int, rng: np.random.Generator) -> Arrivals:
    """The schedule a worker follows (see ``loadgen.stream.arrivals``)."""
    if spec.phases is not None:
        return PhasedTokenBucket(
            spec.phases,
            spec.burst,
            start_ns,
            worker_id=spec.worker_id,
            num_workers=spec.num_workers,
        )
    if spec.arrivals == "closed" or (spec.rate_per_s is None and spec.arrivals != "pace"):
        return ClosedLoop()
    if spec.arrivals == "pace":
        return JitteredArrivals(
            round(spec.interval_s * NS_PER_S),
            spec.max_jitter_ms * NS_PER_MS,
            start_ns,
            rng,
            worker_id=spec.worker_id,
            num_workers=spec.num_workers,
        )
    assert spec.rate_per_s is not None
    if spec.arrivals == "poisson":  # exponential first gaps already spread the workers
        return PoissonArrivals(spec.rate_per_s, start_ns, rng)
    first_ns = start_ns + round(spec.phase_s * NS_PER_S)  # staggered: see RunSpec.worker_specs
    if spec.arrivals == "uniform":
        return UniformArrivals(spec.rate_per_s, first_ns)
    return TokenBucket(spec.rate_per_s, spec.burst, first_ns)
